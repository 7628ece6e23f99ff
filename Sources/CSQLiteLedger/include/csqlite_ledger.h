#ifndef CSQLITE_LEDGER_H
#define CSQLITE_LEDGER_H

/// Turns on SQLite's query planner stability guarantee (SQLITE_DBCONFIG_ENABLE_QPSG) for the
/// connection `db` (an sqlite-nio `sqlite3 *`). Without it, SQLite marks a statement to be
/// compiled again whenever a parameter that could change its plan is bound anew; in a statement
/// with more than 31 parameters all of them share one mark, so a cached 500-row VALUES insert was
/// compiled again on every run. sqlite3_db_config is variadic, which Swift cannot call.
/// Returns SQLite's result code.
int jsm_sqlite_enable_qpsg(void *db);

#endif
