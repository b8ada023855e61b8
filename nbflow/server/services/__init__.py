"""Data access: plain async functions that take an explicit session and a tenant id."""
