"""``autoscaler doctor``: checks the whole chain of a live deployment and says which link is broken.

links.py (the links, their order, the service, webhook and Docker checks), signals.py (the
scaling rules Prometheus has loaded), promlinks.py and amlinks.py (the Prometheus and
Alertmanager checks), all pure; gather.py reads the facts; run.py ties them and prints.
"""
