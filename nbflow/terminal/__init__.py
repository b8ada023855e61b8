"""Terminal output: run progress, summaries and plain-text tables; headless notebook runs."""
