/*
 * crash.h — test facilities of the storage's syscall layer: a crash journal
 * (power loss after kill -9) and faults switched on from outside.
 *
 * NEVER ON BY DEFAULT: both are opt-in through the environment, for the
 * cluster fault suite (tests/cluster/run, scenarios power-loss and
 * disk-fault); a broker started without these variables runs the plain
 * calls behind one predictable branch (rn_crash_active false).
 *
 *  RUNNEL_CRASH_JOURNAL=PATH  append to PATH one line per event that decides
 *      what a power loss would leave on disk (SQLite's test6.c is the model,
 *      as the unit tests' crash layer, tests/unit/storage/helpers.h): the
 *      files created (inode, directory, path), every range written (pwrite,
 *      io_uring write, a store into a mapped index) before it is issued, each
 *      fdatasync/syncfs begun and completed, renames (the file a rename
 *      replaces is first hard-linked to PATH.d/ so it can be put back),
 *      unlinks and truncations. kill -9 keeps the page cache, so after
 *      kill -9 of every broker tests/cluster/powerloss.py reads the journal
 *      and rewinds each data directory to what the disk would hold: bytes
 *      written since the last completed sync of their file are kept, zeroed
 *      or garbled by sector, files whose creation nothing made durable are
 *      deleted, renames no directory sync covered are undone. Several
 *      brokers may share one journal (O_APPEND, one write per line).
 *
 *  RUNNEL_FAULT=CALL:ERRNO[:path=SUBSTR][:when=FILE][:after=N]  fail CALL
 *      (fdatasync or pwrite; the io_uring ones too) with ERRNO (EIO, ENOSPC)
 *      for files whose path contains SUBSTR, while FILE exists (a test
 *      touches it mid-load), after N matching calls have succeeded.
 *
 * Journal lines (fields separated by one space; paths last, may hold spaces):
 *   O ino dir_ino new path     opened for writing; new: created (or O_TRUNC)
 *   W ino lo hi                bytes [lo, hi) about to be written
 *   T ino len                  truncated / extended to len
 *   B id ino                   an fdatasync of ino begins (ino 0: a syncfs)
 *   S id rc                    it completed with rc (0: durable)
 *   R side from_dir_ino to_dir_ino from TAB to   a rename (side: the link
 *                              to the replaced file, "-" when none, "!" when
 *                              it could not be linked: PATH on another fs)
 *   U ino                      unlinked
 */
#ifndef RN_CRASH_H
#define RN_CRASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* True when a journal or a fault is configured. Set once, before any storage
 * object is used. */
extern bool rn_crash_active;

/* Read RUNNEL_CRASH_JOURNAL and RUNNEL_FAULT. 0 (nothing configured, or
 * configured: *what then says so, for the log), or -errno with err set. */
int rn_crash_init_from_env(char *what, size_t whatlen, char *err, size_t errlen);

/* Hooks the syscall layer calls when rn_crash_active. */
void rn_crash_opened(int fd, const char *path, int flags, bool existed);
/* Before a write (pwrite or io_uring) of [pos, pos+len) to fd: a fault to
 * inject (-errno; nothing journaled) or 0. */
int rn_crash_write(int fd, off_t pos, size_t len);
void rn_crash_store(const char *path, size_t lo, size_t hi);
void rn_crash_truncated(int fd, off_t len);
/* Before an fdatasync of fd: a fault to inject (-errno) or 0, and *id for
 * rn_crash_synced (0: nothing journaled). sfs: a syncfs. */
int rn_crash_sync_begin(int fd, bool sfs, uint64_t *id);
void rn_crash_synced(uint64_t id, int rc);
void rn_crash_rename(const char *from, const char *to);
void rn_crash_unlink(const char *path);

#endif
