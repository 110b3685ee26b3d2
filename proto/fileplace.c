/* fileplace.c — see fileplace.h. */
#include "fileplace.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

const char *rete_fs_unusable(const char *path)
{
	/* the magic numbers of linux/magic.h, written out: that header is
	 * not part of every build machine's C library headers */
	static const struct {
		unsigned long magic;
		const char *name;
	} kinds[] = {
	    {0x9fa0, "the kernel's proc file system"},
	    {0x62656572, "the kernel's sysfs file system"},
	    {0x27e0eb, "the kernel's cgroup file system"},
	    {0x63677270, "the kernel's cgroup2 file system"},
	    {0x64626720, "the kernel's debugfs file system"},
	    {0x74726163, "the kernel's tracefs file system"},
	    {0x73636673, "the kernel's securityfs file system"},
	    {0x1cd1, "the kernel's devpts file system"},
	    {0xcafe4a11, "the kernel's bpf file system"},
	    {0x42494e4d, "the kernel's binfmt_misc file system"},
	    {0x6e736673, "the kernel's nsfs file system"},
	};
	struct statfs fs;
	struct statvfs vfs;
	if (statfs(path, &fs) == 0)
		for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
			if ((unsigned long)fs.f_type == kinds[i].magic)
				return kinds[i].name;
	if (statvfs(path, &vfs) == 0 && (vfs.f_flag & ST_RDONLY))
		return "a file system mounted read-only";
	return NULL;
}

/* place_said writes the sentence into buf (n bytes) and returns buf. */
__attribute__((format(printf, 3, 4))) static const char *place_said(char *buf, size_t n,
								    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, n, fmt, ap);
	va_end(ap);
	return buf;
}

const char *rete_file_place(const char *path, unsigned flags, char *buf, size_t n)
{
	struct stat st;
	char dir[PATH_MAX];
	const char *fs;
	bool socket = (flags & RETE_PLACE_SOCKET) != 0;
	bool renamed = (flags & RETE_PLACE_RENAMED) != 0;

	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			return place_said(buf, n, "%s is a folder", path);
		if (!socket && !S_ISREG(st.st_mode))
			return place_said(buf, n, "%s is not a regular file", path);
		if ((fs = rete_fs_unusable(path)) != NULL)
			return place_said(buf, n, "%s is on %s, where nothing can be written", path,
					  fs);
		if (!socket && !renamed && access(path, W_OK) != 0)
			return place_said(buf, n, "%s cannot be written by this user (uid %ld): %s",
					  path, (long)getuid(), strerror(errno));
		if (flags & RETE_PLACE_APPEND)
			return NULL;
	} else if (errno != ENOENT && errno != ENOTDIR) {
		return place_said(buf, n, "%s cannot be reached: %s", path, strerror(errno));
	}
	/* the folder it is made (or renamed, or unlinked) in: the nearest that
	 * exists when missing folders are made */
	if (strlen(path) >= sizeof(dir))
		return place_said(buf, n, "%.64s... is longer than %d bytes", path, PATH_MAX - 1);
	snprintf(dir, sizeof(dir), "%s", path);
	for (;;) {
		char *slash = strrchr(dir, '/');
		if (slash == NULL)
			snprintf(dir, sizeof(dir), ".");
		else
			slash[slash == dir] = '\0'; /* "/x" -> "/" */
		if (stat(dir, &st) == 0)
			break;
		if (errno == ENOTDIR)
			continue; /* a part above is a file: it is named below */
		if (errno != ENOENT)
			return place_said(buf, n, "the folder %s cannot be reached: %s", dir,
					  strerror(errno));
		if (!(flags & RETE_PLACE_MAKE_FOLDERS) || strcmp(dir, "/") == 0 ||
		    strcmp(dir, ".") == 0)
			return place_said(buf, n, "the folder %s does not exist", dir);
	}
	if (!S_ISDIR(st.st_mode))
		return place_said(buf, n, "%s is not a folder", dir);
	if ((fs = rete_fs_unusable(dir)) != NULL)
		return place_said(buf, n, "the folder %s is on %s, where no file can be made", dir,
				  fs);
	if (access(dir, W_OK | X_OK) != 0)
		return place_said(buf, n,
				  "the folder %s cannot be written by this user (uid %ld): %s", dir,
				  (long)getuid(), strerror(errno));
	return NULL;
}
