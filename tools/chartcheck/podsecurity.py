"""The Pod Security Standards "restricted" profile (Kubernetes 1.33), checked on a rendered pod spec.

Written from https://kubernetes.io/docs/concepts/security/pod-security-standards/ so a chart fails
here, before a cluster whose namespace enforces `restricted` refuses its pods.
"""

from __future__ import annotations

from typing import Any

ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SECCOMP_OK = {"RuntimeDefault", "Localhost"}

WORKLOAD_POD_SPEC = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec inside a workload object, or None for objects that run no pods."""
    path = WORKLOAD_POD_SPEC.get(obj.get("kind", ""))
    if path is None:
        return None
    node: Any = obj
    for key in path:
        node = (node or {}).get(key)
    return node or {}


def violations(spec: dict[str, Any]) -> list[str]:
    """Every way `spec` breaks the restricted profile, one line each; empty when it passes."""
    out: list[str] = []
    pod_sc = spec.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            out.append(f"{field} is true")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            out.append(f"volume {volume.get('name')!r} is of a forbidden type {sorted(kinds - ALLOWED_VOLUMES)}")
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            out.append(f"sysctl {sysctl.get('name')!r} is not in the safe set")
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in SECCOMP_OK:
        out.append(f"pod seccompProfile.type is {pod_seccomp}")
    if pod_sc.get("runAsUser") == 0:
        out.append("pod runAsUser is 0")
    if (pod_sc.get("seLinuxOptions") or {}).get("type") not in (None, "", "container_t", "container_init_t", "container_kvm_t"):
        out.append("pod seLinuxOptions.type is not allowed")

    containers = [(kind, c) for kind in ("initContainers", "containers", "ephemeralContainers") for c in spec.get(kind) or []]
    if not containers:
        out.append("the pod has no containers")
    for kind, c in containers:
        name = f"{kind[:-1]} {c.get('name')!r}"
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            out.append(f"{name} is privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name} does not set allowPrivilegeEscalation: false")
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            out.append(f"{name} does not run as non-root (runAsNonRoot: true on the pod or the container)")
        if sc.get("runAsUser") == 0:
            out.append(f"{name} runAsUser is 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in SECCOMP_OK:
            out.append(f"{name} has no RuntimeDefault or Localhost seccomp profile")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{name} does not drop ALL capabilities")
        added = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            out.append(f"{name} adds capabilities {sorted(added)}")
        if sc.get("procMount") not in (None, "Default"):
            out.append(f"{name} procMount is {sc.get('procMount')}")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                out.append(f"{name} uses hostPort {port['hostPort']}")
    return out
