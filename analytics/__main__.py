"""`python -m analytics replay|what-if|report`; see `analytics.cli`."""

from analytics.cli import main

main()
