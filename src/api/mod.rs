//! The Kubernetes API of the operator: `ApplicationClientSecret`, `EiamProvider`, `ClusterEiamProvider`.
