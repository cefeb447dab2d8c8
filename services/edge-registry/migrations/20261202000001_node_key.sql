-- The node's own public key (Ed25519, base64url): enrolment binds the node to it, so a retry of the
-- same enrolment (same join token, same key) is answered again and anyone else's is refused.
ALTER TABLE edge_nodes ADD COLUMN public_key text;
CREATE UNIQUE INDEX edge_nodes_public_key ON edge_nodes (public_key);
