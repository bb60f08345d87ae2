-- The warehouse of docker-compose.yaml, run by `entrypoint.sh init` with psql as the server's admin:
-- psql -v warehouse_db=NAME -v identity=LOGIN -f warehouse.sql. Safe to run again (every step checks first).
--
-- Deployment roles (NOLOGIN) hold the GRANTs; an identity logs in as its own role, which inherits nothing
-- (NOINHERIT): it can only work after `SET ROLE` to a role it was granted, which is what idbt's
-- warehouse_role_from_identity does from the identity's groups (docs/warehouses/postgres.md).

set client_min_messages = warning;

select format('create database %I', :'warehouse_db')
where not exists (select from pg_database where datname = :'warehouse_db') \gexec

select format('create role %I nologin', name)
from unnest(array['transformer', 'reporting']) as name
where not exists (select from pg_roles where rolname = name) \gexec

select format('create role %I login noinherit', :'identity')
where not exists (select from pg_roles where rolname = :'identity') \gexec

grant transformer to :"identity";

\connect :warehouse_db
set client_min_messages = warning;

create schema if not exists raw;
create schema if not exists analytics;
create table if not exists raw.customers (id int primary key, first_name text, last_name text);
create table if not exists raw.orders (id int primary key, customer_id int, ordered_at date, status text);
insert into raw.customers values (1, 'Ada', 'Lovelace'), (2, 'Grace', 'Hopper') on conflict do nothing;
insert into raw.orders values (1, 1, '2026-01-02', 'completed'), (2, 2, '2026-01-05', 'shipped')
on conflict do nothing;

-- transformer reads raw and builds analytics; reporting only reads what transformer builds there.
grant usage on schema raw to transformer;
grant select on all tables in schema raw to transformer;
grant usage, create on schema analytics to transformer;
grant usage on schema analytics to reporting;
alter default privileges for role transformer in schema analytics grant select on tables to reporting;
