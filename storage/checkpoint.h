/*
 * checkpoint.h — small durable files guarded by an XXH3-64 checksum.
 *
 * The clean-shutdown marker and the recovery point are checkpoints: a fixed
 * 8-byte magic, a payload of up to RN_CHECKPOINT_MAX bytes, and XXH3-64 over
 * both. Written as tmp → fdatasync → rename → fsync(dir), so a reader sees the
 * old file or the new one, never half of one.
 *
 * Inside a deferred-durability window (storage/sys.h) a write is queued and
 * done by rn_sys_defer_end after its first syncfs (tmp → rename, the second
 * syncfs making it durable): a marker never reaches the disk before the data
 * it vouches for. Reads and removals inside the window see the queue.
 */
#ifndef RN_CHECKPOINT_H
#define RN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#define RN_CHECKPOINT_MAX 256

/* Durably replace dir/name with magic + payload (inside a window: queue it;
 * durable once rn_sys_defer_end returns 0). Errors: -errno from the syscall
 * table (the tmp file is removed on failure), -ENOMEM. */
int rn_checkpoint_write(const char *dir, const char *name, const char magic[8], const void *payload,
                        size_t len);

/* Read dir/name into payload (exactly len bytes expected). Returns 0, -ENOENT
 * when absent, -RN_E_CORRUPT_FILE on a wrong magic, size or checksum, -errno. */
int rn_checkpoint_read(const char *dir, const char *name, const char magic[8], void *payload,
                       size_t len);

/* Remove dir/name (and a queued write of it) and fsync dir (inside a window:
 * at rn_sys_defer_end); an absent file is success. */
int rn_checkpoint_remove(const char *dir, const char *name);

#endif
