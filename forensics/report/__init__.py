"""Reports rendered from what the case stores: incident and weekly, HTML and Markdown."""
