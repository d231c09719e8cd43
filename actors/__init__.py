"""actorflow.actors: the actor kernel on pykka (no sockets, no runtime)."""
