-- Bulwark tenancy schema, version 2: a tenant may name the JWT claim that
-- names it (jwt_tenant_claim; NULL: the node's tenant_claim), for identity
-- providers that put the tenant in another claim ("org",
-- "https://example.com/tenant"). 1..128 bytes of printable ASCII without
-- spaces, as the model checks. The row trigger of 0001 announces a change
-- of this column as of any other: 'tenant:<name>:'.

ALTER TABLE bulwark_tenants ADD COLUMN jwt_tenant_claim text
	CHECK (octet_length(jwt_tenant_claim) BETWEEN 1 AND 128
	       AND jwt_tenant_claim !~ '[^!-~]');
