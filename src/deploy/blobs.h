/*
 * blobs: the code and files of model versions on every replica of a shared registry
 * (PostgreSQL). A replica that registers a version publishes what it stored locally into the
 * registry's content-addressed blob table (registry_blob_*) before it records the version; a
 * replica that deploys (or restores) a version it does not hold fetches the blobs into its own
 * data dir, checks every SHA-256, and only then loads it. No shared filesystem is needed.
 *
 *   plugin version   blob kind "plugin": the .so, under its sha256 (reg_version.sha256); on a
 *                    replica it becomes <data-dir>/plugins/<sha256>.so (the plugin store);
 *   model directory  blob kind "file" per file (under the file's sha256) and kind "artifact":
 *                    the directory's manifest (artifact_manifest), whose sha256 is the
 *                    directory's digest (reg_version.artifact_sha256); on a replica the files
 *                    are imported into <data-dir>/artifacts/<digest>/ as an upload would be,
 *                    and the digest recomputed.
 * On a SQLite registry (one server) every function here does nothing and returns 0: the data
 * dir already holds everything.
 *
 * Thread-safety: reentrant (the registry serializes its own calls; the stores are safe for
 * concurrent imports of the same content).
 */
#ifndef DS_DEPLOY_BLOBS_H
#define DS_DEPLOY_BLOBS_H

#include <stddef.h>

#include "registry.h"

/* Publish the stored plugin <stored_path> (whose SHA-256 is sha256) / the stored version
 * directory <stored_dir> (digest sha256). Blobs already in the registry are not sent again;
 * the manifest goes last, so a published manifest never names a missing file. 0, or -1 with
 * err. */
int deploy_blobs_publish_plugin(registry *reg, const char *stored_path, const char *sha256,
                                char *err, size_t errlen);
int deploy_blobs_publish_dir(registry *reg, const char *stored_dir, const char *sha256, char *err,
                             size_t errlen);

/* Point v at this replica's copies: v->plugin_path (a plugin version with a digest) becomes
 * <data_dir>/plugins/<sha256>.so and v->artifact_dir (a model directory) becomes
 * <data_dir>/artifacts/<digest>, fetched from the registry first when missing and refused when
 * the fetched bytes do not have the recorded digest. v's strings stay owned by v. 0, or -1 with
 * err (the registry has no such blob, a digest mismatch, a full disk). */
int deploy_blobs_localize(registry *reg, const char *data_dir, reg_version *v, char *err,
                          size_t errlen);

#endif
