/* corpora/default.h — the default corpus: the General MIDI music that Debian ships with two
 * games, so that `make demo` has real music (that nobody here wrote) on a fresh machine.
 *
 *   openttd-openmsx   OpenMSX, OpenTTD's music set: 31 .mid files (GPL-2)
 *                     in /usr/share/games/openttd/baseset/openmsx/
 *   simutrans-data    Simutrans's music: 53 .mid files (Artistic licence)
 *                     in /usr/share/games/simutrans/music/
 *
 * `make deps` installs both (apt-get install --no-install-recommends openttd-openmsx
 * simutrans-data). The files are found the way `dpkg -L PACKAGE` finds them, by reading dpkg's
 * file list /var/lib/dpkg/info/PACKAGE.list (or PACKAGE:ARCH.list) — no process is started —
 * and, where there is no list (files copied by hand, another distribution), by walking the
 * package's install folder above. Each file is named "PACKAGE/FILE" in the corpus (its path
 * relative to that folder). See corpora/README.md for pointing cantor at any other folder. */
#ifndef CANTOR_CORPORA_DEFAULT_H
#define CANTOR_CORPORA_DEFAULT_H

#include "corpora/build.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CP_DEFAULT_NUM_PACKAGES 2
#define CP_DEFAULT_PACKAGES "openttd-openmsx simutrans-data"

/* Package i's name and install folder (0 <= i < CP_DEFAULT_NUM_PACKAGES; NULL otherwise). */
const char *cp_default_package(int i);
const char *cp_default_dir(int i);

typedef struct cp_default_opts {
    const char *dpkg_info_dir;  /* NULL: "/var/lib/dpkg/info" */
    const char *root;           /* NULL or "": the system; else prefixed to every absolute path (tests) */
} cp_default_opts;

/* Adds the default corpus's MIDI files to out (o may be NULL). CT_E_IO when a package is not
 * installed: "the default corpus is not installed: Debian package openttd-openmsx (...) is
 * missing; run `make deps` ...", or when dpkg lists files that are gone. */
ct_status cp_default_sources(const cp_default_opts *o, cp_sources *out, cp_error *err);
/* cp_default_sources + cp_build. */
ct_status cp_default_build(const cp_default_opts *d, const char *out_path, const cp_build_opts *o, cp_stats *stats,
                           cp_error *err);

#ifdef __cplusplus
}
#endif
#endif
