-- "The requests of a principal": the one definition used by detector read-backs, finding and
-- incident costs, both reports and the Python API. Each request appears once per principal it
-- belongs to:
--   credential    its credential_id
--   tenant        its tenant_id
--   user          its user_id
--   ip            its client_ip, for requests without a credential (as the detectors judge an
--                 address: a keyed request is judged by its key)
--   asn           its ASN, as decimal text ("64500")
--   cidr          its client_net: the IPv4 /24 ("203.0.113.0/24") or IPv6 /64 ("2001:db8::/64")
-- A provider_key principal has no gateway requests: its usage is in `usage`.
-- `request_row` (from the view `request_rows`: the request's rowid, or its place in a lake's
-- files) tells requests apart wherever one request may be reached through several principals:
-- a batched log line (a Kong http-log array) holds several requests with one source_id and
-- line_no.
CREATE OR REPLACE {kind} VIEW request_principals AS
SELECT 'credential' AS principal_type, credential_id AS principal_id, *
FROM request_rows WHERE credential_id IS NOT NULL
UNION ALL
SELECT 'tenant', tenant_id, * FROM request_rows WHERE tenant_id IS NOT NULL
UNION ALL
SELECT 'user', user_id, * FROM request_rows WHERE user_id IS NOT NULL
UNION ALL
SELECT 'ip', client_ip, * FROM request_rows WHERE credential_id IS NULL AND client_ip IS NOT NULL
UNION ALL
SELECT 'asn', CAST(asn AS VARCHAR), * FROM request_rows WHERE asn IS NOT NULL
UNION ALL
SELECT 'cidr', client_net, * FROM request_rows WHERE client_net IS NOT NULL;

-- request_subjects: each request once, with the one principal the detectors judge it by (the
-- shared features, principal_hours, and the quota verdict's principals): its credential, else
-- its client address, else its tenant; then request_row and every column of `requests`.
CREATE OR REPLACE {kind} VIEW request_subjects AS
SELECT CASE WHEN credential_id IS NOT NULL THEN 'credential'
            WHEN client_ip IS NOT NULL THEN 'ip' ELSE 'tenant' END AS principal_type,
       coalesce(credential_id, client_ip, tenant_id) AS principal_id, *
FROM request_rows;

-- principal_requests(type, id): the requests of one principal, every column of `requests`.
CREATE OR REPLACE TEMP MACRO principal_requests(ptype, pid) AS TABLE
SELECT * EXCLUDE (principal_type, principal_id, request_row) FROM request_principals
WHERE principal_type = ptype AND principal_id = pid;
