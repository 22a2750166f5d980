"""One module per sub-command; ``mailtrace.cli`` registers each with one line."""
