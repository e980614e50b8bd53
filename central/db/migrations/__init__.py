"""Alembic's migration environment and scripts for the center's database (run by
`central.db.schema.migrate`). A schema change is a new script in `versions/` whose
`down_revision` is the current head."""
