"""swarm-autoscaler: an Alertmanager webhook receiver that scales Docker Swarm services."""
