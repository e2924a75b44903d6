/*
 * assets.h — the web console's files, compiled into runneld (DESIGN §7).
 *
 * broker/gateway/console/embed.py turns the folder's index.html, app.js, style.css and
 * favicon.svg into web_assets.c at build time, so the broker serves the console without any
 * file on disk and a binary always carries the console it was built with. The HTTP gateway
 * (broker/gateway/) calls rn_web_asset() for GET requests that are not API paths.
 */
#ifndef RN_WEB_ASSETS_H
#define RN_WEB_ASSETS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Looks up the console file for an HTTP request path. "/" maps to index.html; a query
 * string or fragment ("?…", "#…") is ignored; paths are otherwise matched exactly
 * ("/app.js"), so "..", "//" or percent-encoding never reach another file.
 *
 * On success returns 0 and sets *data and *len to the file's bytes and *content_type to its
 * MIME type with charset for text ("text/javascript; charset=utf-8"). All three are
 * borrowed static data, valid for the life of the process; any of the out-pointers may be
 * NULL when the caller does not need it. The bytes are not NUL-terminated.
 *
 * Errors: -ENOENT when no console file has that path; -EINVAL when path is NULL.
 * Pure and thread-safe: any reactor may call it.
 */
int rn_web_asset(const char *path, const uint8_t **data, size_t *len, const char **content_type);

#endif
