"""`python -m ticketing` runs the same command line as `ticketing`."""

from ticketing.cli import main

main()
