"""actorflow.runtime: the user-facing API."""
