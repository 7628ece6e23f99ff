#include "csqlite_ledger.h"

// From sqlite-nio's SQLite (its VaporCSQLite target, symbols prefixed `sqlite_nio_`), which the
// ledger links through SQLiteNIO; declared here because that target's header is not exported.
extern int sqlite_nio_sqlite3_db_config(void *db, int op, ...);

// SQLITE_DBCONFIG_ENABLE_QPSG in sqlite3.h.
enum { dbconfig_enable_qpsg = 1007 };

int jsm_sqlite_enable_qpsg(void *db) {
    int enabled = 0;
    return sqlite_nio_sqlite3_db_config(db, dbconfig_enable_qpsg, 1, &enabled);
}
