/* libdbfs: transactions on a DBFS mount for C programs (C++: dbfs.hpp).
 *
 *   dbfs_tx *tx;
 *   for (int attempt = 0; attempt < 5; ++attempt) {
 *     int rc = dbfs_tx_begin("/mnt/dbfs", 0, &tx);
 *     if (rc != DBFS_OK) { fprintf(stderr, "%s\n", dbfs_strerror(rc)); break; }
 *     ... change files under /mnt/dbfs: the calling process and the children it
 *     starts from now on are inside the transaction ...
 *     rc = dbfs_tx_commit(tx, DBFS_TX_DURABLE);
 *     if (rc == DBFS_ECONFLICT) fprintf(stderr, "conflict on %s\n", dbfs_tx_detail(tx));
 *     dbfs_tx_free(tx);
 *     if (rc != DBFS_ECONFLICT && rc != DBFS_EDEADLOCK) break;   // retry only those
 *   }
 *
 * A transaction is bound to a process exactly as `dbfs tx begin` binds the
 * shell: that process and all its descendants (of the same user) see the
 * transaction's changes; everyone else sees them when it commits. A process
 * tree holds at most one transaction; if its root process exits first, the
 * daemon rolls it back. The library talks to the daemon through the mount's
 * control channel (getxattr of "dbfs.*" names on the mount's root; see
 * dbfs(7)); it is thread-safe as long as a handle is used by one thread at a
 * time. Link with `pkg-config --cflags --libs dbfs`. Manual: libdbfs(3). */
#ifndef DBFS_DBFS_H_
#define DBFS_DBFS_H_

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes: 0 or one of these (negative). A program can act on each. */
enum {
  DBFS_OK = 0,
  DBFS_ECONFLICT = -1,   /* commit lost a conflict: nothing changed; run again */
  DBFS_EDEADLOCK = -2,   /* DBFS_TX_LOCK: chosen as a deadlock victim, rolled back; run again */
  DBFS_ENOTDBFS = -3,    /* the path is not (inside) a DBFS mount */
  DBFS_ENOTX = -4,       /* no such open transaction (ended, timed out, its root process died), or no such process */
  DBFS_EBUSY = -5,       /* the process is already in a transaction */
  DBFS_EPERM = -6,       /* not allowed (another user's process or transaction) */
  DBFS_EINVAL = -7,      /* bad argument */
  DBFS_ESYSTEM = -8,     /* another error; errno says which */
};

/* Flags of dbfs_tx_begin. */
#define DBFS_TX_SNAPSHOT 0x1u /* snapshot isolation (default: serializable) */
#define DBFS_TX_LOCK 0x2u     /* pessimistic: lock what is read or written until the end */
/* Flags of dbfs_tx_commit. */
#define DBFS_TX_DURABLE 0x4u  /* the commit is durable before the call returns */

typedef struct dbfs_tx dbfs_tx;

/* Begins a transaction on the DBFS mount containing `path` and binds the
 * calling process (and its future children) to it. */
int dbfs_tx_begin(const char *path, unsigned flags, dbfs_tx **tx);
/* The same for process `pid` (and its children): what `dbfs tx begin` does
 * for its shell and `dbfs tx run` for its command. */
int dbfs_tx_begin_pid(const char *path, pid_t pid, unsigned flags, const char *command,
                      dbfs_tx **tx);
/* A handle on the open transaction `id` (e.g. $DBFS_TX, or one left open by
 * `dbfs tx run --keep`), to commit or abort it. */
int dbfs_tx_open(const char *path, const char *id, dbfs_tx **tx);

/* Commits (flags: DBFS_TX_DURABLE). DBFS_OK, DBFS_ECONFLICT or
 * DBFS_EDEADLOCK (rolled back: dbfs_tx_detail says on what), or an error.
 * The transaction has ended unless the result is DBFS_ESYSTEM. */
int dbfs_tx_commit(dbfs_tx *tx, unsigned flags);
/* Rolls back. DBFS_OK; DBFS_EDEADLOCK if it had already been rolled back as a
 * deadlock victim. */
int dbfs_tx_abort(dbfs_tx *tx);
/* Frees the handle; a transaction still open is left open (it ends when its
 * root process does, or by dbfs_tx_abort from another handle). */
void dbfs_tx_free(dbfs_tx *tx);

const char *dbfs_tx_id(const dbfs_tx *tx);    /* its id, as `dbfs tx status` shows it */
const char *dbfs_tx_mount(const dbfs_tx *tx); /* the mount point */
/* After DBFS_ECONFLICT: the path the conflict was on; after DBFS_EDEADLOCK:
 * why; after a successful commit: the commit's CSN; after an error: the
 * daemon's or the system's message. */
const char *dbfs_tx_detail(const dbfs_tx *tx);

/* The open transactions of the mount containing `path`, one line each (as
 * `dbfs tx status` prints them). *text is malloc()ed: free() it. */
int dbfs_tx_status(const char *path, char **text);

/* The mount point of the DBFS mount containing `path` (malloc()ed). */
int dbfs_find_mount(const char *path, char **mount);

/* A raw control-channel request (dbfs(7)): `command` such as "dbfs.stats";
 * the reply (malloc()ed, NUL-terminated; *len without the NUL). Long replies
 * are fetched page by page. */
int dbfs_control(const char *mount, const char *command, char **reply, size_t *len);

/* A message for a return code. */
const char *dbfs_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif /* DBFS_DBFS_H_ */
