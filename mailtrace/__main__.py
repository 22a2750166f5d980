"""``python -m mailtrace`` → the command line."""

from mailtrace.cli import main

main()
