"""forensics: offline log forensics and reporting for abuse of AI APIs."""

__version__ = "0.1.0"
