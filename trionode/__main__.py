from trionode.cli import main

main()
