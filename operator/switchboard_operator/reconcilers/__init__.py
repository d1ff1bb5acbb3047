"""One reconciler per concern, each reading the cluster cache and the capacity picture and
carrying out one pure decision from `logic/`. They never import each other: the manager
wires the one callback a reconciler may need from another (e.g. `trigger_room`).

The autoscaler goes here as one more: it reads demand from the capacity picture and
writes SFU pods and cordons, and the manager starts it after the Region reconciler.
"""
