"""``autoscaler doctor``: checks the whole chain of a live deployment and says which link is broken.

Pure: links.py (the links, their order, the service, webhook and Docker checks), signals.py (the
scaling alerts Prometheus has loaded and the records they read), promlinks.py and amlinks.py
(the Prometheus and Alertmanager checks). gather.py reads the facts; run.py ties them and prints.
"""
