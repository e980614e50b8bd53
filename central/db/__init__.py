"""The center's records in one database: SQLite (WAL) by default, PostgreSQL by URL for a
center of several processes or hosts. SQLAlchemy 2 describes the tables (`models`),
Alembic changes them (`schema.migrate`, run before first use), and one thin repository per kind of
record works inside a transaction the caller opens:

    database = open_migrated(settings.database())  # or SchemaTooNew
    with database.write() as tx:
        user = Users(tx).create("ana", "dispatcher", password_hash, now)
        Audit(tx).append(AuditEntry(now, "admin", "user.create", "ok", object="ana"))

The audit log's hash chain is a pure core of its own (`audit_chain`); its head is also
kept outside the database (`anchors`).
"""
