-- An admin removed the node: from then on its bus credential is refused and it is out of the fleet;
-- the Kubernetes reconciler drains and deletes its Node, then the row goes.
ALTER TABLE edge_nodes ADD COLUMN removing_since timestamptz;
ALTER TABLE edge_nodes ADD COLUMN removed_by text;
