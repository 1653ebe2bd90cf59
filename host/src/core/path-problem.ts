/**
 * Why a path could not be used, in words a user can act on: the one wording for every place ICE reads
 * or writes a file the user named (a component, a policy, secrets, --input-file, --state, -o), so no
 * command shows a bare `ENOENT` or `EISDIR` while another says "no such file".
 */

/** What the path was expected to be: decides how "exists as the wrong kind" is put. */
export type PathKind = 'file' | 'directory';

export function pathProblem(error: unknown, expected: PathKind = 'file'): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return expected === 'file' ? 'no such file' : 'no such directory';
    case 'EISDIR':
      return 'it is a directory';
    case 'ENOTDIR':
      return expected === 'directory' ? 'it is a file, not a directory' : 'a part of the path is a file, not a directory';
    // mkdir of a path that exists as a file.
    case 'EEXIST':
      return expected === 'directory' ? 'it is a file, not a directory' : 'it already exists';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'the file system is read-only';
    case 'ENOSPC':
      return 'no space left on the device';
    case 'ENAMETOOLONG':
      return 'the path is too long';
    case 'ELOOP':
      return 'too many levels of symbolic links';
    default:
      return error instanceof Error ? error.message : String(error);
  }
}
