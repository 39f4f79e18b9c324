"""`python -m composer` (and `torchrun -m composer`) run the command line."""

from .cli import main

main()
