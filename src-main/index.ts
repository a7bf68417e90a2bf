/** Electron main entry (electron-vite bundles it to out/main/index.js). */
import { useBackbone } from './app-paths';
import { runElectronApp } from './electron/app';

// Packaged, the backbone sits in the app's resources; the engine worker inherits the path.
const backbone = useBackbone({ resourcesPath: process.resourcesPath });
if (!backbone.ok) console.error(`warning: ${backbone.message}`);

runElectronApp();
