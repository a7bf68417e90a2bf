/** Electron main entry (electron-vite bundles it to out/main/index.js). */
import { runElectronApp } from './electron/app';

runElectronApp();
