"""The operator's bottle dashboard (web issue)."""
