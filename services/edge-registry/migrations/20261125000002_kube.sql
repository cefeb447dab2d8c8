-- What edge-registry has done to each node's Kubernetes Node object.
ALTER TABLE edge_nodes ADD COLUMN kube_labeled_at timestamptz;
-- True only while edge-registry holds the node cordoned; it never uncordons a node an admin cordoned.
ALTER TABLE edge_nodes ADD COLUMN kube_cordoned boolean NOT NULL DEFAULT false;
