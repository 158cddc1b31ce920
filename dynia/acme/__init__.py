"""ACME: one order (client, certbot's `acme`), DNS-01 through the zone's API (dns01), the
state the order is kept in (state), when a served certificate's expiry needs a person (expiry)."""
