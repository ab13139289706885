"""Gateway tooling: the declarative service list (services.yaml), the Envoy config
generator, the dev token CLI and the local dev stack (`make run`)."""
