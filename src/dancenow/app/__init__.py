"""The creator's front door: `dancenow run` (chain), its background jobs and the local web app."""
