"""Kernel personalities and the mechanisms they share.

registry (the personalities that exist), base (kernel instances from boot records, personalities' init programs), urpc (Barrelfish's URPC
channel as core programs), microbench (the Barrelfish paper's coherence-versus-message experiments).
"""
