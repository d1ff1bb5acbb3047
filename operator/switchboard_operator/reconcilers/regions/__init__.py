"""The Region reconciler: a Region becomes SFU pods, TURN, Services, PDBs and policies, and
its status follows them and the capacity its SFU pods report."""

from switchboard_operator.reconcilers.regions.reconciler import RegionReconciler

__all__ = ["RegionReconciler"]
