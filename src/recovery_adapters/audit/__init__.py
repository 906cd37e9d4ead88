"""The auditor's tools: ``recovery verify`` and what it reads of a run's
files and git."""
