// @ts-check
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  {
    ignores: [
      'build/',
      'dist/',
      'node_modules/',
      // AssemblyScript: a TypeScript dialect (u8, load<T>, @inline) that typescript-eslint rejects.
      'assembly/',
      'test-results/',
      'playwright-report/',
      '.cache/',
      'guest/out/',
    ],
  },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    // Plain JS here is Node scripts (bin/, this file); TypeScript files get no-undef from tsc.
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
  {
    rules: {
      // `_`-prefixed names are deliberately unused (parameters of an interface's shape).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
);
