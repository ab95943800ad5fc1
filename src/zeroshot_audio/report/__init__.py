"""What a run reports: Markdown tables (``tables``) and matplotlib figures (``figures``)."""
