"""``python -m mailtrace`` → the command line."""

from mailtrace.cli import run

run()
