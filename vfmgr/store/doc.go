// Package store is vflagd's crash-safe allocation table: which VM interface
// holds which VF, kept in a bbolt file (default /var/lib/vflag/state.db).
//
// Every write is one bbolt transaction, fsynced before it returns, so after a
// crash the file holds either all or none of a write.
//
// Failover moves many VMs at once and touches the kernel in between, so it is
// written ahead: the daemon calls BeginMoves with its plan BEFORE it changes
// any VF, then CommitMoves once the kernel matches the plan. CommitMoves
// applies the moves to the allocations and deletes the intent in one
// transaction, so the file never shows a half-applied plan. On start-up,
// PendingMoves returns the intents a crash left behind; the daemon compares
// each with the kernel and either rolls it forward (redo the kernel side,
// then CommitMoves) or back (undo it, then AbortMoves).
//
// Records are JSON with a schema version ("v"). A record of an unknown
// version, or one that does not decode, is an error that names its key
// (ErrSchemaVersion, ErrCorrupt): nothing is ever dropped silently.
package store
