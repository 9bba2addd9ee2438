"""The API's read model: sqlmodel tables on SQLite (default) or MySQL/MariaDB, fed from the streams.

- `engine`      `open_store(url)` → `Store` (async engine, schema creation), `StoreError`
- `tables`      the tables (instances, detections, recoveries + steps, events, KV status, cursors)
- `projection`  `apply_batch()`: idempotent, resumable application of stream messages
- `queries`     what the API reads
"""

from libs.store.engine import Store, StoreError, from_db_time, open_store, redacted, to_db_time

__all__ = ["Store", "StoreError", "from_db_time", "open_store", "redacted", "to_db_time"]
