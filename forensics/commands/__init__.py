"""Click commands kept out of cli.py; cli.py registers them."""
