/* conffile.c — see conffile.h. */
#include "conffile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"

rete_err rete_conffile_open(const char *path, FILE **out, rete_msg *m)
{
	struct stat st;
	rete_err err = RETE_OK;

	*out = NULL;
	/* O_NONBLOCK: a named pipe without a writer would block the open */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return rete_msg_set(m, RETE_EIO, "cannot read the configuration: %s",
				    strerror(errno));
	if (fstat(fd, &st) != 0)
		err =
		    rete_msg_set(m, RETE_EIO, "cannot read the configuration: %s", strerror(errno));
	else if (S_ISDIR(st.st_mode))
		err = rete_msg_set(m, RETE_EINVAL,
				   "is a folder, not a configuration file; give the path of the "
				   ".ini file");
	else if (!S_ISREG(st.st_mode))
		err = rete_msg_set(m, RETE_EINVAL,
				   "is not a regular file (a device, a pipe or a socket), so no "
				   "configuration (it is read again, at a reload or a check); give "
				   "the path of the .ini file");
	else if (st.st_size > RETE_CONFFILE_MAX)
		err = rete_msg_set(m, RETE_EINVAL,
				   "is %lld bytes, larger than any configuration file (at most %d "
				   "MiB): is it the .ini file?",
				   (long long)st.st_size, RETE_CONFFILE_MAX / (1024 * 1024));
	else if (fcntl(fd, F_SETFL, 0) != 0 || (*out = fdopen(fd, "r")) == NULL)
		err =
		    rete_msg_set(m, RETE_EIO, "cannot read the configuration: %s", strerror(errno));
	if (err != RETE_OK) {
		close(fd);
		return err;
	}
	if ((err = rete_conffile_start(*out, m)) != RETE_OK) {
		fclose(*out);
		*out = NULL;
	}
	return err;
}

rete_err rete_conffile_start(FILE *f, rete_msg *m)
{
	unsigned char head[3];
	size_t n = fread(head, 1, sizeof(head), f);

	if (ferror(f))
		return rete_msg_set(m, RETE_EIO, "cannot read the configuration: %s",
				    strerror(errno));
	/* UTF-16 in either byte order: its mark is FF FE or FE FF, bytes that
	 * never open UTF-8 text */
	if (n >= 2 &&
	    ((head[0] == 0xFF && head[1] == 0xFE) || (head[0] == 0xFE && head[1] == 0xFF)))
		return rete_msg_set(m, RETE_EINVAL,
				    "the file is saved as UTF-16 (it starts with the byte order "
				    "mark %s); save it as UTF-8 (in Notepad: Save as, Encoding "
				    "UTF-8)",
				    head[0] == 0xFF ? "FF FE" : "FE FF");
	if (n == 3 && head[0] == 0xEF && head[1] == 0xBB && head[2] == 0xBF)
		return RETE_OK;
	if (fseek(f, 0, SEEK_SET) != 0)
		return rete_msg_set(m, RETE_EIO, "cannot read the configuration: %s",
				    strerror(errno));
	return RETE_OK;
}

size_t rete_conffile_utf8_column(const char *line, size_t len, unsigned char *byte)
{
	size_t bad = rete_utf8_bad_offset(line, len), col = 1;

	if (bad == (size_t)-1)
		return 0;
	/* what comes before is UTF-8: a character per byte that does not
	 * continue one */
	for (size_t i = 0; i < bad; i++)
		col += ((unsigned char)line[i] & 0xC0) != 0x80;
	*byte = (unsigned char)line[bad];
	return col;
}

void rete_conffile_not_utf8(char *out, size_t n, unsigned char byte, size_t col)
{
	char at[32] = "", what[16] = "such bytes";

	if (col > 0)
		snprintf(at, sizeof(at), " at column %zu", col);
	/* Windows-1252 and Latin-1 agree with Unicode from 0xC0 to 0xFF, the
	 * accented letters (à è é ì ò ù): the letter meant, in UTF-8 */
	if (byte >= 0xC0)
		snprintf(what, sizeof(what), "'%c%c' so", (char)(0xC0 | (byte >> 6)),
			 (char)(0x80 | (byte & 0x3F)));
	snprintf(out, n,
		 "byte 0x%02X%s is not UTF-8, the encoding of every configuration file (an "
		 "editor set to Windows-1252 or Latin-1 writes %s); save the file as UTF-8 (in "
		 "Notepad: Save as, Encoding UTF-8)",
		 byte, at, what);
}
