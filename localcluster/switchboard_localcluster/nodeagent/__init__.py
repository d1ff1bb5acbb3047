"""A kwok-style stand-in for the kubelet that runs Pods as local processes on loopback addresses.

Kept import-free on purpose: the per-container launcher is started as
``python -m switchboard_localcluster.nodeagent.launcher`` and must start fast.
"""
