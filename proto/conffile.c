/* conffile.c — see conffile.h. */
#include "conffile.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

rete_err rete_conffile_check(FILE *f, rete_msg *m)
{
	struct stat st;
	if (fstat(fileno(f), &st) != 0)
		return rete_msg_set(m, RETE_EIO, "cannot read the configuration: %s",
				    strerror(errno));
	if (S_ISDIR(st.st_mode))
		return rete_msg_set(m, RETE_EINVAL,
				    "is a folder, not a configuration file; give the path of the "
				    ".ini file");
	if (!S_ISREG(st.st_mode))
		return rete_msg_set(m, RETE_EINVAL,
				    "is not a regular file (a device, a pipe or a socket), so no "
				    "configuration; give the path of the .ini file");
	if (st.st_size > RETE_CONFFILE_MAX)
		return rete_msg_set(m, RETE_EINVAL,
				    "is %lld bytes, larger than any configuration file (at most "
				    "%d MiB): is it the .ini file?",
				    (long long)st.st_size, RETE_CONFFILE_MAX / (1024 * 1024));
	return RETE_OK;
}
