"""Test-only code: fake wirings and columns, and reference versions of rules the package implements
differently. Imported as `helpers.<module>` (pytest puts tests/ on the path)."""
