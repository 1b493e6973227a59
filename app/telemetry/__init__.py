"""What every process reports about itself: Prometheus metrics across processes, and the log format.

The lowest layer beside ``k8s``: the web, writer and command packages all use it, and it imports
nothing of the application.
"""
